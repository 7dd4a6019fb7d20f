job "report" {
  type = "batch"
  periodic {
    crons            = ["0 3 * * *", "30 12 * * 1-5"]
    prohibit_overlap = true
    time_zone        = "Europe/Paris"
    enabled          = true
  }
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "report@1.0.0"
        mode   = "command"
      }
    }
  }
}
