job "app" {
  group "app" {
    network {
      port "http" {}
    }
    task "migrate" {
      driver = "wasm"
      lifecycle {
        hook = "prestart"
      }
      config {
        module = "migrate@1.0.0"
        mode   = "command"
      }
    }
    task "app" {
      driver = "wasm"
      config {
        module = "app@1.0.0"
        mode   = "http"
      }
    }
  }
}
