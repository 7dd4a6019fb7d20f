package edge

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// fingerprint is what the agent tells the coordinator about its host.
type fingerprint struct {
	cpuMHz     int
	memoryMB   int
	drivers    map[string]bool
	attributes map[string]string
}

func fingerprintHost() fingerprint {
	cores := runtime.NumCPU()
	mhz := cpuMHz()
	fp := fingerprint{
		cpuMHz:   int(mhz * float64(cores)),
		memoryMB: memoryMB(),
		// wasm runs in-process and is always available; docker is added
		// by New when a Docker Engine answers.
		drivers: map[string]bool{"wasm": true},
		attributes: map[string]string{
			"kernel.name":     runtime.GOOS,
			"cpu.arch":        runtime.GOARCH,
			"cpu.numcores":    strconv.Itoa(cores),
			"cpu.frequency":   strconv.Itoa(int(mhz)),
			"driver.wasm":     "1",
			"unique.hostname": hostname(),
		},
	}
	return fp
}

// addDriver offers a driver, with the attributes driver.<name> = "1" and
// driver.<name>.version (constraints may use both).
func (fp *fingerprint) addDriver(name, version string) {
	fp.drivers[name] = true
	fp.attributes["driver."+name] = "1"
	if version != "" {
		fp.attributes["driver."+name+".version"] = version
	}
}

// cpuMHz is the first "cpu MHz" of /proc/cpuinfo; 1000 when unknown
// (containers and some VMs hide it).
func cpuMHz() float64 {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 1000
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			if mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && mhz > 0 {
				return mhz
			}
		}
	}
	return 1000
}

// memoryMB is MemTotal from /proc/meminfo; 1024 when unknown.
func memoryMB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 1024
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			if kb, err := strconv.Atoi(fields[1]); err == nil {
				return kb / 1024
			}
		}
	}
	return 1024
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
