job "nightly" {
  type = "service"
  periodic {
    crons     = ["*/2 * * * * * *", "61 * * * *"]
    time_zone = "Mars/Olympus"
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
