{
  "targets": [
    {
      "target_name": "pty_spawn",
      "sources": ["pty_spawn.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
