# The 153-byte hand-written WAGI module: every request gets "hello".
# Push the module first:  strata module push examples/tiny/tiny.wasm -name tiny -version 0.1.0
job "tiny" {
  group "web" {
    count = 1
    task "tiny" {
      driver = "wasm"
      config {
        module           = "tiny@0.1.0"
        mode             = "http"
        max_request_time = "1s"
        max_concurrency  = 64
      }
      resources {
        cpu    = 100
        memory = 16
        network {
          port "http" {}
        }
      }
      service {
        port = "http"
        check {
          type     = "http"
          path     = "/"
          interval = "5s"
          timeout  = "1s"
        }
      }
    }
  }
}
