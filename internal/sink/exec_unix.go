//go:build unix

package sink

import (
	"errors"
	"os/exec"
	"syscall"
)

// killGroupOnCancel starts cmd in a process group of its own and makes
// exec.CommandContext's cancel kill that whole group: a hook that forks
// (a shell running a pipeline, a background helper) would otherwise leave its
// children running after a timeout, one more for every retry.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// With Setpgid the group's id is the program's pid.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return nil // the whole group had already exited
		}
		return err
	}
}
