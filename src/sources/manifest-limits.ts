// How much of one manifest file the sidecar reads and expands: shared by the file reader
// (manifest-files.ts) and the YAML loader (manifest-yaml.ts).

/**
 * Limits that keep one hostile file from stopping the process. YAML aliases share one parsed node
 * among all their uses, so a few hundred bytes of anchors expand to gigabytes (billion laughs) or
 * to a nesting tens of thousands deep as soon as anything walks them (JSON.stringify, the model
 * deserializer, translate): "Invalid string length", "Maximum call stack size exceeded". js-yaml's
 * own limits bound the parse (nesting, aliases per document, merge keys) but not the expansion:
 * nine aliases per level over nine levels are 81 aliases and 387 million nodes. So each document is also
 * measured as if every alias were copied out, by walking the shared nodes once (memoized, with an
 * explicit stack): cheap however large the expansion, and the file is refused before anything
 * else walks it. Without aliases a document's expanded size is at most about twice its bytes, so
 * maxExpandedUnits only ever refuses alias expansion.
 */
export const MANIFEST_LIMITS = {
  /** Bytes per file: far above any real manifest (an API object is at most ~1.5 MiB). */
  maxFileBytes: 16 * 1024 * 1024,
  /** js-yaml's maxAliases, per document: anchors for shared labels and the like fit easily. */
  maxAliases: 1000,
  /** js-yaml's maxDepth (its default), and the same bound on the nesting once aliases are expanded. */
  maxDepth: 100,
  /** Expanded size of a file's documents, in nodes plus string characters. */
  maxExpandedUnits: 2 * 16 * 1024 * 1024,
} as const;
