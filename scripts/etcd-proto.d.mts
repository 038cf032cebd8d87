import type { Plugin } from 'esbuild'

/** Puts etcd3's gRPC definitions in the bundle (see etcd-proto.mjs). */
export declare const etcdProto: Plugin
/** Bundles etcd3 apart, as a string compiled on first import (see etcd-proto.mjs). */
export declare const etcdClient: Plugin
