job "nightly" {
  type = "batch"
  periodic {
    cron             = "0 3 * * *"
    prohibit_overlap = true
    time_zone        = "Europe/Paris"
  }
  group "g" {
    task "t" {
      driver = "wasm"
      config {
        module = "nightly@1.0.0"
        mode   = "command"
      }
    }
  }
}
