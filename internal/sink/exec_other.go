//go:build !unix

package sink

import "os/exec"

// killGroupOnCancel leaves cmd as it is: without process groups only the
// program itself is killed on a timeout.
func killGroupOnCancel(*exec.Cmd) {}
