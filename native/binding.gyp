{
  "targets": [
    {
      "target_name": "pty_spawn",
      "sources": ["pty_spawn.c", "pty_reader.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      "target_name": "read_files",
      "sources": ["read_files.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      "target_name": "atomic_write",
      "sources": ["atomic_write.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
