job "env" {
  meta {
    owner = "ops"
  }
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "env@1.0.0"
        mode   = "command"
      }
      env {
        TEAM = "${NOMAD_META_team}"
      }
    }
  }
}
