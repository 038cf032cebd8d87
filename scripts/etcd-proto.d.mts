import type { Plugin } from 'esbuild'

/** Puts etcd3's gRPC definitions in the bundle (see etcd-proto.mjs). */
export declare const etcdProto: Plugin
