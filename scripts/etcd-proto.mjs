// esbuild plugins for the etcd client (etcd3), which ipmove loads only for an
// IP that follows `source = etcd`.
//
// etcdProto: etcd3 loads its gRPC service definitions from .proto files beside
// its own code when first imported (`loadSync(`${__dirname}/../proto/rpc.proto`)`),
// which a bundle has neither (no __dirname in ES modules, no proto/ in dist/).
// The definitions are parsed here, at build time, and put in the bundle as JSON
// for proto-loader's fromJSON, with the options etcd3 gives loadSync.
//
// etcdClient: `import … from 'etcd3'` becomes etcd3 and its dependencies (gRPC,
// protobufjs: 1.2 MB) bundled apart, gzipped into one base64 string that is
// unpacked and compiled on first import. Code in a bundle costs every start-up
// its parsing, even behind a lazy import(), wherever it is one file
// (dist/ipmove.cjs: +15 ms of CPU per run as plain code, +8 ms as a plain
// string); 300 kB of base64 cost a scan.
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const LOAD_SYNC = /\(0, proto_loader_1\.loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`, \{/

export const etcdProto = {
  name: 'etcd-proto',
  setup(b) {
    b.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8')
      if (!LOAD_SYNC.test(text)) {
        throw new Error(`${args.path}: etcd3 no longer loads rpc.proto as this plugin expects`)
      }
      // protobufjs as etcd3's proto-loader resolves it, so the JSON matches its reader.
      const fromLoader = createRequire(createRequire(args.path).resolve('@grpc/proto-loader'))
      const protobuf = fromLoader('protobufjs')
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

export const etcdClient = {
  name: 'etcd-client',
  setup(b) {
    b.onResolve({ filter: /^etcd3$/ }, (args) => ({
      path: createRequire(join(args.resolveDir, 'x.js')).resolve('etcd3'),
      namespace: 'etcd-client',
    }))
    b.onLoad({ filter: /.*/, namespace: 'etcd-client' }, async (args) => {
      const bundled = await build({
        entryPoints: [args.path],
        bundle: true,
        platform: 'node',
        format: 'cjs',
        target: 'node20',
        write: false,
        plugins: [etcdProto],
        logLevel: 'warning',
      })
      const packed = gzipSync(bundled.outputFiles[0].contents, { level: 9 }).toString('base64')
      // CommonJS: the requiring bundle's require() (its banner's in ES modules) serves Node's own modules.
      const contents = `const { compileFunction } = require('node:vm')
const { gunzipSync } = require('node:zlib')
const code = gunzipSync(Buffer.from(${JSON.stringify(packed)}, 'base64')).toString()
const loaded = { exports: {} }
compileFunction(code, ['exports', 'require', 'module'], { filename: 'etcd3.bundled.cjs' })(loaded.exports, require, loaded)
module.exports = loaded.exports
`
      return { contents, loader: 'js', resolveDir: dirname(args.path) }
    })
  },
}
