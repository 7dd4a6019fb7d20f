// Command strata-bench measures Strata. Subcommands:
//
//	strata-bench deploy -strata bin/strata -address http://127.0.0.1:4700 -dns 127.0.0.1:8600 \
//	    -job examples/hello/hello.hcl -runs 5
//
// deploy measures the time from `strata run` to the first successful
// request to the deployed service, resolved through Strata's DNS, against
// a running `strata dev` whose module is already pushed.
package main
