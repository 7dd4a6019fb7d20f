job "env" {
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "env@1.0.0"
        mode   = "command"
      }
      env {
        INDEX = "${NOMAD_ALOC_INDEX}"
      }
    }
  }
}
