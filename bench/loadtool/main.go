// Command loadtool is the helper of bench/loadtest.sh: it generates the zone
// and the query files, finds free ports, primes clients' windows from many
// loopback source addresses, posts an event storm, checks verdicts and counts the API calls.
// dnsperf does the load itself; this tool does what dnsperf cannot.
//
//	loadtool gen      -dir DIR [-names N] [-queries N] [-suspicious F] [-seed N]
//	loadtool ports    N
//	loadtool prime    -server ADDR -clients N [-first IP] [-per N] -names FILE
//	loadtool storm    -api URL -clients N [-first IP] [-loaded IP] -found FILE
//	loadtool verdicts -api URL -ips FILE [-timeout D]
//	loadtool apicalls -fake URL -events N [-found FILE]
//	loadtool summary  FILE [FILE...]
//	loadtool buckets  WITH_FILE WITHOUT_FILE
//	loadtool latfix   -dir DIR [-n N] [-first IP]
//	loadtool latency  -server ADDR -events URL [-ips N] [-trials N] [-fresh]
//	loadtool perfsplit [FILE]   (perf script -F time,ip,sym output: the storm's share per second)
//
// Every target is on loopback: the tool refuses any other address.
package main

import (
	"fmt"
	"os"
)

const usage = `Usage: loadtool gen|ports|prime|storm|verdicts|apicalls|summary|buckets|latfix|latency|perfsplit [flags]
Run "loadtool COMMAND -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"gen":       runGen,
		"ports":     runPorts,
		"prime":     runPrime,
		"storm":     runStorm,
		"verdicts":  runVerdicts,
		"apicalls":  runAPICalls,
		"summary":   runSummary,
		"buckets":   runBuckets,
		"latfix":    runLatFix,
		"latency":   runLatency,
		"perfsplit": runPerfSplit,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "loadtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
