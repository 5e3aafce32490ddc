package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexblock/flexblock/driver/logging"
)

// A tool prints a secret in its stderr in every place a cut could fall:
// at the start, at the head/tail boundary of what is kept (stderrKeep),
// around the middle a megabyte in, and at the end, with megabytes of noise
// around it. Secrets of 1 to 3 characters and secrets of regex and JSON
// metacharacters included. Neither the error (which reaches kubelet's
// answer) nor the log line may hold the secret, and both stay bounded.
func TestAttackSecretsInHugeStderr(t *testing.T) {
	for _, secret := range []string{"Z", "q7", "p@$", `a"b\c`, `.*+?`, "QVFCbTJnTnJqTVlpQXhBQU1lNExJT2dML25zUzFOM3JxWnNydWc9PQ=="} {
		for _, at := range []int{0, stderrKeep - 2, stderrKeep - len(secret)/2, 1 << 20, 8<<20 - 64<<10 - 1} {
			name := fmt.Sprintf("%q@%d", secret, at)
			var log bytes.Buffer
			mask := &logging.Masker{}
			mask.Add(secret)
			e := &Exec{Mask: mask, Dir: filepath.Join(t.TempDir(), "work"), Log: slog.New(slog.NewJSONHandler(&log, nil)),
				Timeout: func(string) time.Duration { return time.Minute }}
			// 8 MiB of noise ('.' never glues to a short secret), the secret at
			// byte at, spelled with printf so argv does not hold it.
			script := fmt.Sprintf(`head -c %d /dev/zero | tr '\0' '.' >&2; printf ' %%s ' "$(printf '%s')" >&2; head -c %d /dev/zero | tr '\0' '.' >&2; exit 3`,
				at, shellEscape(secret), 8<<20-at)
			_, err := e.Run(context.Background(), Cmd{Name: "sh", Args: []string{"-c", script}})
			var ee *ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("%s: %v", name, err)
			}
			for what, s := range map[string]string{"error": err.Error(), "log": log.String()} {
				if len(s) > 2*logging.MaxAnswer+4096 {
					t.Errorf("%s: %s is %d bytes", name, what, len(s))
				}
				if leaked(s, secret) {
					t.Errorf("%s: the %s holds the secret: %.300q", name, what, around(s, secret))
				}
			}
		}
	}
}

// leaked: the secret stands as a value (between the noise's spaces), raw
// or JSON-escaped.
func leaked(s, secret string) bool {
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(secret)
	return strings.Contains(s, " "+secret+" ") || strings.Contains(s, " "+esc+" ")
}

func around(s, secret string) string {
	i := strings.Index(s, secret)
	if i < 0 {
		return ""
	}
	return s[max(0, i-40):min(len(s), i+len(secret)+40)]
}

func shellEscape(s string) string { return strings.ReplaceAll(s, "'", `'\''`) }
