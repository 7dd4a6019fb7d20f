variable "region" {
  default = "eu"
}

job "interp" {
  group "web" {
    meta {
      zone = "${attr.zone}"
    }

    task "hello" {
      driver = "docker"
      config {
        image   = "nginx:${node.datacenter}"
        args    = ["--region", "${var.regoin}", "${vars.region}"]
        command = "${STRATA_PORT_http}-${attr}"
      }
      env {
        A = "${foo.bar}"
        B = "${node.dc}"
        C = "${meta}"
        D = "${NOMAD_PORT_http}"
        E = "${"$"}${STRATA_TASK_NAME}"
      }
    }
  }
}
