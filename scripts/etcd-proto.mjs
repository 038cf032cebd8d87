// esbuild plugin for the etcd client (etcd3): it loads its gRPC service
// definitions from .proto files beside its own code when first imported
// (`loadSync(`${__dirname}/../proto/rpc.proto`)`), which a bundle has neither
// (no __dirname in ES modules, no proto/ in dist/). The definitions are parsed
// here, at build time, and put in the bundle as JSON for proto-loader's
// fromJSON, with the options etcd3 gives loadSync.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const LOAD_SYNC = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`, \{/

export const etcdProto = {
  name: 'etcd-proto',
  setup(b) {
    b.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8')
      if (!LOAD_SYNC.test(text)) {
        throw new Error(`${args.path}: etcd3 no longer loads rpc.proto as this plugin expects`)
      }
      // protobufjs as etcd3's proto-loader resolves it, so the JSON matches the reader.
      const require = createRequire(require_from(args.path))
      const protobuf = require('protobufjs')
      const root = new protobuf.Root()
      root.loadSync(join(dirname(args.path), '..', 'proto', 'rpc.proto'), { keepCase: true })
      const json = JSON.stringify(root.toJSON())
      return {
        contents: text.replace(LOAD_SYNC, `(0, proto_loader_1.fromJSON)(${json}, {`),
        loader: 'js',
      }
    })
  },
}

/** A require() base inside @grpc/proto-loader, whose protobufjs reads the JSON. */
function require_from(connectionPool) {
  const fromEtcd = createRequire(connectionPool)
  return fromEtcd.resolve('@grpc/proto-loader')
}
