# Every attribute of this version of the language, written out.
job "full" {
  type        = "service"
  region      = "eu"
  datacenters = ["dc1", "dc2"]
  priority    = 70
  meta = {
    owner = "platform"
  }

  group "api" {
    count = 0
    meta {
      tier = "backend"
    }

    task "server" {
      driver = "wasm"
      config {
        module = "api@2.0.0-rc.1+build.7"
        mode   = "http"
        args   = ["-v", "--port=8080"]
      }
      env = {
        "LOG_LEVEL" = "debug"
        PORT        = 8080
      }
      restart {
        attempts = 0
        interval = "5m"
        delay    = "0s"
        mode     = "delay"
      }
      resources {
        cpu    = 1
        memory = 10
        network {
          mbits = 1
          port "http" {
            static = 8080
            to     = 80
          }
        }
        network {
          port "admin" {}
        }
      }
      service {
        name = "api"
        tags = ["v2", "urlprefix-/api"]
        port = "http"
        check {
          type     = "tcp"
          interval = "1s"
        }
        check {
          type     = "http"
          path     = "/ready"
          interval = "30s"
          timeout  = "30s"
        }
      }
      service {
        port = "admin"
      }
      meta {
        team = "core"
      }
    }

    task "sidecar" {
      driver = "docker"
      config {
        image = "envoyproxy/envoy:v1.30"
      }
    }
  }

  group "pinned" {
    task "by-digest" {
      driver = "wasm"
      config {
        module = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        mode   = "http"
      }
    }
  }
}
