# Every block and attribute of the language, written out.
variable "image_tag" {
  type        = string
  default     = "v1.30"
  description = "the envoy image tag"
}

variable "api_count" {
  type    = number
  default = 3
}

job "full" {
  type        = "service"
  region      = "eu"
  datacenters = ["dc1", "dc2"]
  priority    = 70
  meta = {
    owner = "platform"
  }

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  affinity {
    attribute = "${node.datacenter}"
    value     = "dc1"
    weight    = -40
  }

  spread {
    attribute = "${node.datacenter}"
    target "dc1" {
      percent = 70
    }
    target "dc2" {
      percent = 30
    }
  }

  update {
    max_parallel     = 2
    stagger          = "10s"
    min_healthy_time = "15s"
    healthy_deadline = "3m"
    auto_revert      = true
  }

  group "api" {
    count = var.api_count
    meta {
      tier = "backend"
    }

    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }
    constraint {
      attribute = "${attr.os.version}"
      operator  = "version"
      value     = ">= 20.04, < 26"
    }
    constraint {
      attribute = "${meta.rack}"
      operator  = "regexp"
      value     = "^r[0-9]+$"
    }
    constraint {
      attribute = "${attr.unique.platform.aws.instance-type}"
      operator  = "set_contains_any"
      value     = "m5.large,m6i.large"
    }
    constraint {
      attribute = "${meta.gpu}"
      operator  = "is_not_set"
    }

    affinity {
      attribute = "${node.class}"
      operator  = "set_contains_all"
      value     = "fast,ssd"
    }

    restart {
      attempts = 5
      interval = "10m"
    }

    reschedule {
      attempts       = 3
      interval       = "1h"
      delay          = "10s"
      delay_function = "fibonacci"
      max_delay      = "5m"
    }

    update {
      canary       = 1
      auto_promote = true
    }

    disconnect {
      lost_after = "1h"
      replace    = false
      reconcile  = "keep_original"
    }

    network {
      port "admin" {
        static = 9090
      }
    }

    service {
      name = "api-admin"
      port = "admin"
      check {
        type = "tcp"
      }
    }

    volume "data" {
      type      = "host"
      source    = "api-data"
      read_only = true
    }

    task "server" {
      driver = "wasm"
      config {
        module           = "api@2.0.0-rc.1+build.7"
        mode             = "http"
        args             = ["-v", "--port=${STRATA_PORT_http}"]
        max_request_time = "30s"
        max_concurrency  = 64
      }
      volume_mount {
        volume      = "data"
        destination = "/data"
        read_only   = true
      }
      env = {
        "LOG_LEVEL" = "debug"
        PORT        = 8080
        ADDR        = "${STRATA_ADDR_http}"
      }
      restart {
        attempts = 0
        delay    = "0s"
        mode     = "delay"
      }
      resources {
        cpu    = 1
        memory = 10
        network {
          port "http" {
            static = 8080
            to     = 80
          }
        }
        network {
          port "metrics" {}
        }
      }
      service {
        name = "api"
        tags = ["v2", "urlprefix-/api"]
        port = "http"
        check {
          type     = "tcp"
          interval = "1s"
          check_restart {
            limit = 2
          }
        }
        check {
          type     = "http"
          path     = "/ready"
          interval = "30s"
          timeout  = "30s"
          check_restart {
            limit = 3
            grace = "90s"
          }
        }
      }
      service {
        port = "metrics"
      }
      kill_timeout = "30s"
      meta {
        team = "core"
      }
    }

    task "migrate" {
      driver = "wasm"
      config {
        module      = "migrate@1.0.0"
        mode        = "command"
        max_runtime = "10m"
      }
      lifecycle {
        hook = "prestart"
      }
    }

    task "sidecar" {
      driver = "docker"
      config {
        image   = "envoyproxy/envoy:${var.image_tag}"
        command = "envoy"
        args    = ["--admin-port", "${NOMAD_PORT_admin}"]
        ports   = ["admin"]
      }
      lifecycle {
        hook    = "poststart"
        sidecar = true
      }
    }
  }

  group "pinned" {
    task "by-digest" {
      driver = "wasm"
      config {
        module = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        mode   = "listener"
      }
      resources {
        network {
          port "tcp" {}
        }
      }
    }
  }
}
