job "report" {
  type = "batch"
  group "run" {
    task "report" {
      driver = "wasm"
      config {
        module      = "report@1.0.0"
        mode        = "command"
        max_runtime = "10m"
      }
      restart {
        attempts = 1
        delay    = "5s"
        mode     = "fail"
      }
    }
  }
}
