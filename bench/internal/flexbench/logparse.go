package flexbench

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
)

// callLog is one driver call as its log tells it.
type callLog struct {
	PID    int
	Call   string
	Status string
	CallMs float64 // "call done" ms: from the start of app.Answer to the answer
	ToolMs float64 // sum of the "exec" ms of the tools it ran
	Tools  []toolLog
}

// toolLog is one external program run by the driver's runner.
type toolLog struct {
	Tool string
	Argv []string // as logged (secrets masked)
	Ms   float64
	Exit int
}

// ownMs is the time the driver spent outside its tools, as the log has it.
func (c callLog) ownMs() float64 { return c.CallMs - c.ToolMs }

// logReader reads the calls a driver's log gains between reads.
type logReader struct {
	Path string
	off  int64
}

// skip moves past everything logged so far.
func (r *logReader) skip() {
	if st, err := os.Stat(r.Path); err == nil {
		r.off = st.Size()
	}
}

// next returns the calls completed since the last read, in log order.
func (r *logReader) next() ([]callLog, error) {
	f, err := os.Open(r.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(r.off, io.SeekStart); err != nil {
		return nil, err
	}
	var out []callLog
	open := map[int]*callLog{}
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			r.off += int64(len(line))
			var l struct {
				Msg    string   `json:"msg"`
				PID    int      `json:"pid"`
				Call   string   `json:"call"`
				Status string   `json:"status"`
				Tool   string   `json:"tool"`
				Argv   []string `json:"argv"`
				Ms     float64  `json:"ms"`
				Exit   int      `json:"exit"`
			}
			if json.Unmarshal(line, &l) == nil {
				c := open[l.PID]
				if c == nil {
					c = &callLog{PID: l.PID}
					open[l.PID] = c
				}
				switch l.Msg {
				case "exec":
					c.Tools = append(c.Tools, toolLog{Tool: l.Tool, Argv: l.Argv, Ms: l.Ms, Exit: l.Exit})
					c.ToolMs += l.Ms
				case "call done":
					c.Call, c.Status, c.CallMs = l.Call, l.Status, l.Ms
					out = append(out, *c)
					delete(open, l.PID)
				}
			}
		}
		if err != nil {
			break
		}
	}
	return out, nil
}
