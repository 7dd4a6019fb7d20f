job "server" {
  group "web" {
    network {
      port "http" {
        static = 8080
      }
    }
    task "server" {
      driver = "wasm"
      config {
        module = "server@0.1.0"
        mode   = "listener"
      }
    }
  }
}
