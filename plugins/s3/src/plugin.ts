import { definePlugin, NbdError } from '@nbdts/plugin-api';
import { deviceCallbacks } from '@nbdts/objstore';
import { checkConfig, s3Config } from './config.ts';
import { closeDisk, openDisk, type S3Disk } from './serve.ts';

const usage = `Two modes, as nbdkit's S3 plugin:
  nbdts s3 bucket=B key=disk.img [endpoint-url=URL] -r
      serve one existing object, read-only (ranged GETs, readahead, read cache)
  nbdts s3 bucket=B key=disk size=10G object-size=1M [endpoint-url=URL]
      a read-write disk stored as objects disk/%016x (nbdkit-S3-plugin compatible),
      locked while served (force=true breaks a stale lock)
Credentials: access-key=/secret-key= (+FILE, -, env:NAME), else the AWS chain
(AWS_* variables, ~/.aws files, profile=), or anonymous=true for public objects.
Manage disks with nbdts-s3 (create, upload, download, info, delete).`;

/** The `s3` plugin. One disk per server process; every connection shares its cache. */
export function createS3Plugin() {
  let disk: S3Disk | undefined;
  return definePlugin({
    name: 's3',
    version: '0.1.0',
    description:
      'Serve an S3 object read-only, or a read-write disk split into S3 objects (nbdkit-S3-plugin compatible)',
    usage,
    config: s3Config,
    configComplete: checkConfig,
    async getReady(config, server) {
      disk = await openDisk(config, server.readonly);
    },
    async unload() {
      const d = disk;
      disk = undefined;
      if (d) await closeDisk(d);
    },
    open(): S3Disk {
      if (!disk) throw new NbdError('ESHUTDOWN', 's3: the disk is not open');
      return disk;
    },
    exportDescription: (h: S3Disk) => `s3://${h.bucket}/${h.key}${h.mode === 'split' ? '/ (split)' : ''}`,
    ...deviceCallbacks((h: S3Disk) => h.device),
  });
}
