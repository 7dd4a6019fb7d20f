# Runtime references stay in the job as written; the agent and the
# scheduler resolve them. $${ is a literal "${".
variable "greeting" {
  default = "hello"
}

job "interp" {
  constraint {
    attribute = "${attr.unique.platform.aws.instance-type}"
    operator  = "!="
    value     = "t2.micro"
  }
  constraint {
    attribute = "${meta.zone}"
    value     = "${node.datacenter}-a"
  }

  group "web" {
    network {
      port "http" {}
    }

    task "hello" {
      driver = "docker"
      config {
        image   = "hello:1.0"
        command = "/bin/hello"
        args    = ["--addr", "${STRATA_ADDR_http}", "--node", "${node.unique.name}"]
        ports   = ["http"]
      }
      env {
        PORT      = "${STRATA_PORT_http}"
        NOMADISH  = "${NOMAD_PORT_http}"
        GREETING  = "${var.greeting}, ${STRATA_TASK_NAME}"
        LITERAL   = "$${not_a_reference}"
        DOLLARS   = "costs $5 or $$6"
        SPACED    = "${STRATA_ALLOC_ID}"
        HOST_ATTR = "${attr.unique.hostname}"
        MULTI     = <<-EOT
          port=${STRATA_PORT_http}
          raw=$${x}
        EOT
      }
    }
  }
}
