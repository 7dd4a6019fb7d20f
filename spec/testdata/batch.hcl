# A batch job: Nomad's batch defaults for restart and reschedule, no update.
job "report" {
  type = "batch"

  group "run" {
    task "report" {
      driver = "wasm"
      config {
        module      = "report@1.2.0"
        mode        = "command"
        args        = ["--since", "24h"]
        max_runtime = "1h"
      }
    }
  }
}
