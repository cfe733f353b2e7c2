package testpeer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	stopTimeout  = 10 * time.Second
	logTailLines = 80
)

// errAddrInUse marks a start that failed because a port was taken: the
// process exited before it was ready and its log says so.
var errAddrInUse = errors.New("address already in use")

// listeningLog matches the line in which Prometheus (2.42) and Alertmanager
// (0.25), through the exporter toolkit, name the address they bound, port 0
// resolved.
var listeningLog = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

// startToolkitPeer starts bin (Prometheus or Alertmanager) with args plus
// a listen address of 127.0.0.1:0 and info logging, its output in logPath,
// and waits until it has logged the address it got and answers /-/ready.
// It is stopped when the test ends, and its log tail printed if the test
// failed. It returns the host:port.
func startToolkitPeer(t testing.TB, name, bin string, args []string, logPath string) string {
	t.Helper()
	args = append(args, "--web.listen-address=127.0.0.1:0", "--log.level=info")
	proc, err := startProcess(bin, args, logPath)
	if err != nil {
		t.Fatalf("testpeer: %s: %v", name, err)
	}
	t.Cleanup(func() {
		if exitedBefore, err := proc.stop(); exitedBefore || err != nil {
			t.Errorf("testpeer: %s (exited on its own: %v): %v", name, exitedBefore, err)
		}
		if t.Failed() {
			logTail(t, logPath)
		}
	})
	var addr string
	err = proc.waitReady(30*time.Second, func(log []byte) error {
		m := listeningLog.FindSubmatch(log)
		if m == nil {
			return fmt.Errorf("log names no listen address yet")
		}
		addr = string(m[1])
		return nil
	})
	if err != nil {
		t.Fatalf("testpeer: %s: %v", name, err)
	}
	Eventually(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s ready: %s", name, resp.Status)
		}
		return nil
	})
	return addr
}

// process is one run of a peer binary, its stdout and stderr appended to a
// log file that outlives it (a Collector's restarts share one log).
type process struct {
	cmd      *exec.Cmd
	logPath  string
	logStart int64         // the log's size when this run started
	done     chan struct{} // closed once the process has exited
	err      error         // the result of cmd.Wait; read only after done
}

// startProcess starts bin with args in the log file's directory.
func startProcess(bin string, args []string, logPath string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	// The child gets its own copy of the descriptor.
	defer logf.Close()
	st, err := logf.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = filepath.Dir(logPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, logPath: logPath, logStart: st.Size(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// log returns what this run has written to the log so far.
func (p *process) log() []byte {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(p.logStart, io.SeekStart); err != nil {
		return nil
	}
	b, _ := io.ReadAll(f)
	return b
}

// waitReady polls ready with this run's log until it returns nil. It fails
// when the process exits first (wrapping errAddrInUse when the log names a
// taken port) or when timeout passes.
func (p *process) waitReady(timeout time.Duration, ready func(log []byte) error) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			if bytes.Contains(p.log(), []byte(errAddrInUse.Error())) {
				return fmt.Errorf("exited before it was ready (%v): %w", p.err, errAddrInUse)
			}
			return fmt.Errorf("exited before it was ready: %v", p.err)
		default:
		}
		err := ready(p.log())
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return fmt.Errorf("not ready within %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// stop sends SIGTERM, then SIGKILL after stopTimeout. It reports whether
// the process had already exited on its own, and its exit error then.
func (p *process) stop() (exitedBefore bool, err error) {
	select {
	case <-p.done:
		return true, p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return false, nil
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return false, fmt.Errorf("did not stop within %v of SIGTERM; killed", stopTimeout)
	}
}

// logTail logs the last lines of the log file at path.
func logTail(t testing.TB, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Logf("testpeer: read log: %v", err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	t.Logf("testpeer: last %d lines of %s:\n%s", len(lines), path, strings.Join(lines, "\n"))
}
