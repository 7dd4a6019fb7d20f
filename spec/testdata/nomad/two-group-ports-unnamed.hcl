job "api" {
  group "api" {
    network {
      port "api" {}
      port "admin" {}
    }
    task "api" {
      driver = "wasm"
      config {
        module = "api@1.0.0"
        mode   = "http"
      }
    }
  }
}
