# A command-mode module: runs once, writes a manifest of /data to its stdout log.
# Push the module first:  strata module push examples/worker/worker.wasm -name worker -version 0.1.0
# It reads the host volume "example-data", which an agent must declare:
#   strata agent ... -host-volume example-data=/var/lib/strata-example-data:ro
job "worker" {
  type = "batch"
  group "batch" {
    count = 1

    volume "data" {
      type      = "host"
      source    = "example-data"
      read_only = true
    }

    task "worker" {
      driver = "wasm"
      config {
        module      = "worker@0.1.0"
        mode        = "command"
        args        = ["/data"]
        max_runtime = "5m"
      }
      volume_mount {
        volume      = "data"
        destination = "/data"
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
