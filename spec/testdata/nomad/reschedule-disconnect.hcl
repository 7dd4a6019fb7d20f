job "edge-worker" {
  group "w" {
    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = true
    }
    disconnect {
      lost_after = "1h"
      replace    = false
      reconcile  = "keep_original"
    }
    shutdown_delay = "5s"
    task "w" {
      driver = "wasm"
      config {
        module = "worker@1.0.0"
        mode   = "command"
      }
      kill_timeout = "10s"
    }
  }
}
