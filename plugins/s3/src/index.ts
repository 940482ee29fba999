import { createS3Plugin } from './plugin.ts';

export { createS3Plugin } from './plugin.ts';
export { s3Config, checkConfig, type S3Config } from './config.ts';
export { S3Store, MultipartUpload, type S3StoreOptions } from './s3-store.ts';
export { makeS3Client, resolveRegion, type ConnectOptions } from './client.ts';
export { connect, startupError } from './connect.ts';
export { classifyKind, toStoreError } from './errors.ts';
export {
  splitKeys,
  splitLayout,
  lockKey,
  descriptorKey,
  readDescriptor,
  writeDescriptor,
  type DiskDescriptor,
} from './disk.ts';
export { openDisk, closeDisk, type S3Disk } from './serve.ts';

/** The built-in `s3` plugin: `nbdts s3 bucket=B key=K [size=S object-size=O]`. */
export default createS3Plugin();
