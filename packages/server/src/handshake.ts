/**
 * Fixed-newstyle option haggling (server side). Returns the negotiated
 * state when the client enters transmission, or undefined when the
 * connection should be closed (ABORT, protocol violation, EXPORT_NAME refused).
 */
import type { Logger } from 'pino';
import type { Client } from '@nbdts/plugin-api';
import {
  BASE_ALLOCATION,
  ClientFlag,
  HandshakeFlag,
  IHAVEOPT,
  Info,
  MAX_STRING,
  Opt,
  Rep,
  TxFlag,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeMetaContextReply,
  encodeOptionReply,
  encodeServerReplyData,
  optName,
  parseInfoRequest,
  parseMetaContextRequest,
  parseOptionHeader,
} from '@nbdts/protocol';
import type { Backend, Capabilities, OpenHandle } from './backend.ts';
import { errnoName } from './errno.ts';
import type { ByteReader } from './reader.ts';

/**
 * Largest option data we buffer. The largest legal INFO/GO is
 * 4 + 4096 + 2 + 2 * 65535 = 135,172 bytes (every possible info type once);
 * meta-context requests with more queries than fit get NBD_REP_ERR_TOO_BIG,
 * which the spec allows. Longer options are read and discarded in chunks
 * (never buffered) and refused the same way, so the session stays usable.
 */
export const MAX_OPTION_DATA = 256 * 1024;

/** The id of base:allocation in SET_META_CONTEXT replies and block status chunks. */
export const BASE_ALLOCATION_ID = 1;

export interface Negotiated {
  handle: OpenHandle;
  exportName: string;
  structured: boolean;
  /** base:allocation context id, or 0 when no context was selected. */
  contextId: number;
  txFlags: number;
}

export interface HandshakeIo {
  reader: ByteReader;
  /** Who is connecting (filters' open sees it). */
  client: Client;
  write(buf: Buffer): void;
  backend: Backend;
  log: Logger;
  shuttingDown(): boolean;
}

export function transmissionFlags(c: Capabilities, structured: boolean): number {
  let f = TxFlag.HAS_FLAGS;
  if (!c.canWrite) f |= TxFlag.READ_ONLY;
  if (c.canFlush) f |= TxFlag.SEND_FLUSH;
  if (c.fua !== 'none') f |= TxFlag.SEND_FUA;
  if (c.rotational) f |= TxFlag.ROTATIONAL;
  if (c.canTrim) f |= TxFlag.SEND_TRIM;
  if (c.zero !== 'none') {
    f |= TxFlag.SEND_WRITE_ZEROES;
    if (c.canFastZero) f |= TxFlag.SEND_FAST_ZERO;
  }
  if (structured) f |= TxFlag.SEND_DF;
  if (c.canMultiConn) f |= TxFlag.CAN_MULTI_CONN;
  if (c.cache !== 'none') f |= TxFlag.SEND_CACHE;
  return f;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function negotiate(io: HandshakeIo): Promise<Negotiated | undefined> {
  const { reader, backend, log } = io;
  const reply = (option: number, type: number, data?: Buffer | string): void => {
    io.write(encodeOptionReply(option, type, data));
  };

  io.write(encodeGreeting(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES));
  const clientFlags = (await reader.read(4)).readUInt32BE(0);
  if ((clientFlags & ~(ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES)) !== 0) {
    log.warn({ clientFlags }, 'client sent unknown handshake flags; closing');
    return undefined;
  }
  const fixed = (clientFlags & ClientFlag.FIXED_NEWSTYLE) !== 0;
  const noZeroes = (clientFlags & ClientFlag.NO_ZEROES) !== 0;

  let structured = false;
  // The last SET_META_CONTEXT: the export it named and whether base:allocation was selected.
  let meta: { name: string; selected: boolean } | undefined;

  for (;;) {
    const header = parseOptionHeader(await reader.read(16));
    if (header.magic !== IHAVEOPT) {
      log.warn('bad option magic; closing');
      return undefined;
    }
    const { option, length } = header;
    log.debug({ option: optName(option), length }, 'option');

    if (option === Opt.EXPORT_NAME) {
      // This option cannot be answered with an error: refusing means closing.
      if (length > MAX_STRING) {
        log.warn({ length }, 'NBD_OPT_EXPORT_NAME name too long; closing');
        return undefined;
      }
      const raw = await reader.read(length);
      if (raw.includes(0)) return undefined;
      const requested = raw.toString('utf8');
      let handle: OpenHandle;
      let name: string;
      try {
        name = requested === '' ? await backend.defaultExport() : requested;
        handle = await backend.open(name, io.client);
      } catch (err) {
        log.warn({ export: requested, err: message(err) }, 'cannot open export; closing');
        return undefined;
      }
      const txFlags = transmissionFlags(handle.caps, structured);
      io.write(encodeExportNameReply(handle.caps.size, txFlags, noZeroes));
      const contextId = structured && meta?.selected && meta.name === requested ? BASE_ALLOCATION_ID : 0;
      return { handle, exportName: name, structured, contextId, txFlags };
    }

    if (!fixed) {
      log.warn({ option }, 'option other than EXPORT_NAME without fixed newstyle; closing');
      return undefined;
    }

    if (length > MAX_OPTION_DATA) {
      await reader.skip(length);
      reply(option, Rep.ERR_TOO_BIG, `option data of ${length} bytes is too large`);
      continue;
    }
    const data = await reader.read(length);

    if (io.shuttingDown() && option !== Opt.ABORT) {
      reply(option, Rep.ERR_SHUTDOWN, 'server is shutting down');
      continue;
    }

    switch (option) {
      case Opt.ABORT:
        reply(option, Rep.ACK);
        return undefined;

      case Opt.LIST: {
        if (length !== 0) {
          reply(option, Rep.ERR_INVALID, 'NBD_OPT_LIST takes no data');
          break;
        }
        let exports;
        try {
          exports = await backend.listExports();
        } catch (err) {
          log.warn({ err: message(err) }, 'listExports failed');
          reply(option, Rep.ERR_PLATFORM, 'cannot list exports');
          break;
        }
        for (const e of exports) reply(option, Rep.SERVER, encodeServerReplyData(e.name, e.description));
        reply(option, Rep.ACK);
        break;
      }

      case Opt.STARTTLS:
        reply(option, Rep.ERR_POLICY, 'TLS is not supported by this server');
        break;

      case Opt.STRUCTURED_REPLY:
        if (length !== 0) reply(option, Rep.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
        else if (structured) reply(option, Rep.ERR_INVALID, 'structured replies already negotiated');
        else {
          structured = true;
          reply(option, Rep.ACK);
        }
        break;

      case Opt.LIST_META_CONTEXT:
      case Opt.SET_META_CONTEXT: {
        const set = option === Opt.SET_META_CONTEXT;
        if (set) meta = undefined; // replaced even when this request fails
        if (!structured) {
          reply(option, Rep.ERR_INVALID, 'negotiate structured replies first');
          break;
        }
        let req;
        try {
          req = parseMetaContextRequest(data);
        } catch (err) {
          reply(option, Rep.ERR_INVALID, message(err));
          break;
        }
        const bad = req.queries.find((q) => !q.includes(':'));
        if (bad !== undefined) {
          reply(option, Rep.ERR_INVALID, `query '${bad}' has no namespace`);
          break;
        }
        // base:allocation is the only context; "base:" is a wildcard for LIST only; other namespaces are ignored.
        const match = set
          ? req.queries.includes(BASE_ALLOCATION)
          : req.queries.length === 0 || req.queries.some((q) => q === BASE_ALLOCATION || q === 'base:');
        if (match)
          reply(option, Rep.META_CONTEXT, encodeMetaContextReply(set ? BASE_ALLOCATION_ID : 0, BASE_ALLOCATION));
        reply(option, Rep.ACK);
        if (set) meta = { name: req.name, selected: match };
        break;
      }

      case Opt.INFO:
      case Opt.GO: {
        let req;
        try {
          req = parseInfoRequest(data);
        } catch (err) {
          reply(option, Rep.ERR_INVALID, message(err));
          break;
        }
        let handle: OpenHandle;
        let name: string;
        try {
          name = req.name === '' ? await backend.defaultExport() : req.name;
          handle = await backend.open(name, io.client);
        } catch (err) {
          const code = errnoName(err);
          log.info({ export: req.name, err: message(err) }, 'cannot open export');
          const type =
            code === 'ESHUTDOWN'
              ? Rep.ERR_SHUTDOWN
              : code === 'EPERM' || code === 'EACCES'
                ? Rep.ERR_POLICY
                : Rep.ERR_UNKNOWN;
          reply(option, type, `cannot open export '${req.name}'`);
          break;
        }
        const caps = handle.caps;
        const txFlags = transmissionFlags(caps, structured);
        try {
          reply(option, Rep.INFO, encodeInfoExport(caps.size, txFlags));
          if (req.infos.includes(Info.NAME)) reply(option, Rep.INFO, encodeInfoString(Info.NAME, name));
          if (req.infos.includes(Info.DESCRIPTION)) {
            let description: string | undefined;
            try {
              description = await handle.description();
            } catch (err) {
              log.warn({ err: message(err) }, 'exportDescription failed');
            }
            if (description !== undefined) {
              reply(option, Rep.INFO, encodeInfoString(Info.DESCRIPTION, description.slice(0, MAX_STRING)));
            }
          }
          // Non-default constraints are announced even unasked (the spec says MUST).
          if (req.infos.includes(Info.BLOCK_SIZE) || caps.pluginBlockSize) {
            const b = caps.blockSize;
            reply(option, Rep.INFO, encodeInfoBlockSize(b.minimum, b.preferred, b.maximum));
          }
          reply(option, Rep.ACK);
        } catch (err) {
          await handle.close().catch(() => {});
          throw err;
        }
        if (option === Opt.INFO) {
          await handle.close().catch((err: unknown) => log.warn({ err: message(err) }, 'close failed'));
          break;
        }
        const contextId = structured && meta?.selected && meta.name === req.name ? BASE_ALLOCATION_ID : 0;
        return { handle, exportName: name, structured, contextId, txFlags };
      }

      default:
        reply(option, Rep.ERR_UNSUP, `option ${optName(option)} is not supported`);
        break;
    }
  }
}
