"""Indexing: catalog files in, items with vectors and payload out, into a store.

`catalog` reads and validates records, `pipeline` fetches, decodes and embeds them in a thread
pool, `index` is the library front (`Index.open`, `sync`, `add`, `delete`), `errorlog` writes the
skipped items, `config` reads the TOML file, and `distributed` runs the same job on Ray Data (a
`Datasink`) or Spark (`mapInArrow` and a partition writer), with the same content hash.
"""
