job "refs" {
  group "web" {
    task "no-version" {
      driver = "wasm"
      config {
        module = "hello"
        mode   = "command"
      }
    }
    task "not-semver" {
      driver = "wasm"
      config {
        module = "hello@latest"
        mode   = "command"
      }
    }
    task "short-digest" {
      driver = "wasm"
      config {
        module = "sha256:xyz"
        mode   = "command"
      }
    }
  }
}
