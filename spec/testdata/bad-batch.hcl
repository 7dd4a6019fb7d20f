# Batch jobs run to completion: they have no rolling updates.
job "nightly" {
  type = "batch"

  update {
    max_parallel = 1
  }

  group "work" {
    update {
      canary = 1
    }
    reschedule {
      delay_function = "exponential"
    }

    task "run" {
      driver = "wasm"
      config {
        module = "run@1.0.0"
        mode   = "command"
      }
    }
  }
}
