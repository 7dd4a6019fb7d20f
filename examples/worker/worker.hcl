# A command-mode module: runs once, writes a manifest of /data to its stdout log.
# Push the module first:  strata module push examples/worker/worker.wasm -name worker -version 0.1.0
job "worker" {
  type = "batch"
  group "batch" {
    count = 1
    task "worker" {
      driver = "wasm"
      config {
        module      = "worker@0.1.0"
        mode        = "command"
        args        = ["/data"]
        max_runtime = "5m"
        mount {
          source   = "/var/lib/strata-example-data"
          target   = "/data"
          readonly = true
        }
      }
      restart {
        attempts = 1
        interval = "10m"
        delay    = "5s"
        mode     = "fail"
      }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
