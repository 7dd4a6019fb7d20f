job "rolling" {
  update {
    max_parallel      = -1
    stagger           = "0s"
    min_healthy_time  = "10m"
    healthy_deadline  = "5m"
    auto_promote      = true
    progress_deadline = "10m"
  }

  group "web" {
    restart {
      interval = "1s"
    }

    reschedule {
      attempts       = 3
      unlimited      = true
      delay          = "1s"
      delay_function = "linear"
    }

    disconnect {
      lost_after = "1h"
      stop_after = "10m"
      reconcile  = "newest"
    }

    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "command"
      }
      kill_timeout = "soon"
    }

    task "after" {
      driver = "wasm"
      config {
        module = "cleanup@0.1.0"
        mode   = "command"
      }
      lifecycle {
        hook    = "poststop"
        sidecar = true
      }
    }

    task "before" {
      driver = "wasm"
      config {
        module = "setup@0.1.0"
        mode   = "command"
      }
      lifecycle {
        hook = "prestop"
      }
    }
  }

  group "hooks-only" {
    reschedule {
      attempts = 2
    }
    task "init" {
      driver = "wasm"
      config {
        module = "setup@0.1.0"
        mode   = "command"
      }
      lifecycle {
        hook = "prestart"
      }
    }
  }
}
