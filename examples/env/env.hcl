# Three copies of a module that prints its environment, each told its own
# index through Nomad's runtime variables, served on the group's port.
# Push the module first:  strata module push examples/env/env.wasm -name env -version 0.1.0
job "env" {
  meta {
    owner = "examples"
  }

  group "echo" {
    count = 3

    network {
      port "http" {}
    }

    # Registered as env-echo.service.strata
    service {
      port = "http"
    }

    task "env" {
      driver = "wasm"

      config {
        module = "env@0.1.0"
        mode   = "http"
        port   = "http"
      }

      env {
        INDEX = "${NOMAD_ALLOC_INDEX}"
        OWNER = "${NOMAD_META_owner}"
        WHERE = "${NOMAD_ADDR_http}"
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
