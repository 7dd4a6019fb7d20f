job "web" {
  group "web" {
    network {
      port "http" {}
    }
    task "web" {
      driver = "wasm"
      config {
        module = "web@1.0.0"
        mode   = "http"
        port   = "https"
      }
    }
  }
}
