job "refs" {
  group "web" {
    task "no-version" {
      driver = "wasm"
      config {
        module = "hello"
        mode   = "http"
      }
    }
    task "not-semver" {
      driver = "wasm"
      config {
        module = "hello@latest"
        mode   = "http"
      }
    }
    task "short-digest" {
      driver = "wasm"
      config {
        module = "sha256:xyz"
        mode   = "http"
      }
    }
  }
}
