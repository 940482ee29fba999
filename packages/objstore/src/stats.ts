/** Counters for tests and debug logs. Plain numbers: read them, do not write them. */
export interface DeviceStats {
  gets: number;
  /** GETs that found no object (read as zeros). */
  getMisses: number;
  getBytes: number;
  puts: number;
  putBytes: number;
  deletes: number;
  /** Store calls retried (every retry counts). */
  retries: number;
  /** Store calls that failed for good (after retries). */
  failures: number;
  /** Chunk lookups answered from the cache / that needed a GET. */
  cacheHits: number;
  cacheMisses: number;
  /** Chunks fetched ahead of sequential reads. */
  readaheads: number;
  evictions: number;
  /** Bytes of object data held in the cache now. */
  cachedBytes: number;
  /** Bytes in dirty chunks now (each dirty chunk counts its full length). */
  dirtyBytes: number;
  dirtyChunks: number;
  /** Store calls in flight now / the most ever at once. */
  inFlight: number;
  peakInFlight: number;
  /** Background write-back stores that failed (the data stays dirty). */
  writebackErrors: number;
}

export function emptyStats(): DeviceStats {
  return {
    gets: 0,
    getMisses: 0,
    getBytes: 0,
    puts: 0,
    putBytes: 0,
    deletes: 0,
    retries: 0,
    failures: 0,
    cacheHits: 0,
    cacheMisses: 0,
    readaheads: 0,
    evictions: 0,
    cachedBytes: 0,
    dirtyBytes: 0,
    dirtyChunks: 0,
    inFlight: 0,
    peakInFlight: 0,
    writebackErrors: 0,
  };
}
