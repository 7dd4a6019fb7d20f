job "hello" {
  group "web" {
    # Nomad knows vault; Strata does not.
    vault {
      policies = ["web"]
    }
    task "hello" {
      driver = "wasm"
      config {
        module = "hello@0.1.0"
        mode   = "command"
      }
    }
  }
}
