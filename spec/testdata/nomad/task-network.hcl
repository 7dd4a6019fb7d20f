# The pre-0.12 style: the port in the task's resources keeps working.
job "hello" {
  group "web" {
    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "http"
      }
      resources {
        network {
          port "http" {}
        }
      }
      service {
        port = "http"
      }
    }
  }
}
