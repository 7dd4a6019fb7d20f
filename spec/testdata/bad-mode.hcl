job "hello" {
  group "web" {
    task "worker" {
      driver = "wasm"
      config {
        module = "worker@1.0.0"
        mode   = "cgi"
      }
    }
    task "server" {
      driver = "wasm"
      config {
        module = "server@1.0.0"
      }
    }
    task "portless" {
      driver = "wasm"
      config {
        module = "server@1.0.0"
        mode   = "listener"
      }
    }
  }
}
