// Command streamclient is the stream bench's Go subscriber process (`price_bench.py --client go`):
// N StreamPrices subscribers, each a goroutine on a connection of its own, until each has
// received `-expect` updates; then it reads the publisher's send times and prints the bench's
// `result {json}` line, as the Python subscriber process does.
//
// No generated code: the request is encoded by hand, the responses pass through a codec that
// hands over the bytes as they came, and only what the bench matches on (each update's
// event_id) is read from them, after the receipt time is taken.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

const method = "/finance.market.v1.PriceService/StreamPrices"

// Field numbers of proto/finance/market/v1: StreamPricesRequest.symbols,
// StreamPricesResponse.prices, PriceUpdate.event_id.
const (
	requestSymbols protowire.Number = 1
	responsePrices protowire.Number = 1
	updateEventID  protowire.Number = 7
)

// rawCodec passes messages through as bytes: the request is encoded here, the responses are
// walked here.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.([]byte), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	// grpc reuses its buffer once Unmarshal returns: keep a copy.
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// receipts is what one subscriber received: each update's id and the time its message arrived.
type receipts struct {
	ids, times []int64
	messages   int
	err        string
}

// add records the ids of one StreamPricesResponse, all at the message's receipt time.
func (r *receipts) add(receivedNs int64, message []byte) error {
	r.messages++
	for len(message) > 0 {
		number, kind, n := protowire.ConsumeTag(message)
		if n < 0 {
			return protowire.ParseError(n)
		}
		message = message[n:]
		if number == responsePrices && kind == protowire.BytesType {
			update, m := protowire.ConsumeBytes(message)
			if m < 0 {
				return protowire.ParseError(m)
			}
			id, err := eventID(update)
			if err != nil {
				return err
			}
			r.ids = append(r.ids, id)
			r.times = append(r.times, receivedNs)
			message = message[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(number, kind, message)
		if m < 0 {
			return protowire.ParseError(m)
		}
		message = message[m:]
	}
	return nil
}

// eventID is a PriceUpdate's event_id as a number (the trade id), -1 when absent.
func eventID(update []byte) (int64, error) {
	for len(update) > 0 {
		number, kind, n := protowire.ConsumeTag(update)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		update = update[n:]
		if number == updateEventID && kind == protowire.BytesType {
			value, m := protowire.ConsumeBytes(update)
			if m < 0 {
				return 0, protowire.ParseError(m)
			}
			return strconv.ParseInt(string(value), 10, 64)
		}
		m := protowire.ConsumeFieldValue(number, kind, update)
		if m < 0 {
			return 0, protowire.ParseError(m)
		}
		update = update[m:]
	}
	return -1, nil
}

// codeName spells a status code as Python's grpc.StatusCode does (DEADLINE_EXCEEDED).
func codeName(code codes.Code) string {
	var out strings.Builder
	for i, r := range code.String() {
		if i > 0 && unicode.IsUpper(r) {
			out.WriteByte('_')
		}
		out.WriteRune(unicode.ToUpper(r))
	}
	return out.String()
}

// subscribe runs one subscriber on a connection of its own until it has `expect` updates.
func subscribe(ctx context.Context, address string, window int32, request []byte, expect int, got *receipts) {
	options := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	}
	if window > 0 {
		// Fixed windows turn off grpc-go's BDP estimation, whose pings (about one per message
		// on a sparse stream) and window updates the server has to answer.
		options = append(options, grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window))
	}
	conn, err := grpc.NewClient(address, options...)
	if err != nil {
		got.err = "CONNECT: " + err.Error()
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err == nil {
		err = stream.SendMsg(request)
	}
	if err == nil {
		err = stream.CloseSend()
	}
	for err == nil && len(got.ids) < expect {
		var message []byte
		if err = stream.RecvMsg(&message); err != nil {
			break
		}
		// The receipt time as the read returns, before the message is walked.
		receivedNs := time.Now().UnixNano()
		if perr := got.add(receivedNs, message); perr != nil {
			got.err = "PARSE: " + perr.Error()
			return
		}
	}
	if err != nil && len(got.ids) < expect {
		if errors.Is(err, io.EOF) {
			got.err = "EOF"
		} else {
			got.err = codeName(status.Code(err))
		}
	}
}

func percentile(ordered []int64, q float64) int64 {
	if len(ordered) == 0 {
		return -1
	}
	return ordered[min(len(ordered)-1, int(float64(len(ordered))*q))]
}

// readSent waits for the publisher's send times, [[id, time_ns], ...], written whole.
func readSent(path string, timeout time.Duration) (map[int64]int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		text, err := os.ReadFile(path)
		if err == nil {
			var pairs [][2]int64
			if err := json.Unmarshal(text, &pairs); err != nil {
				return nil, err
			}
			sent := make(map[int64]int64, len(pairs))
			for _, pair := range pairs {
				sent[pair[0]] = pair[1]
			}
			return sent, nil
		}
		if !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func main() {
	address := flag.String("address", "", "host:port of the price service")
	subscribers := flag.Int("subscribers", 1, "concurrent StreamPrices subscribers")
	expect := flag.Int("expect", 0, "updates each subscriber waits for")
	sentFile := flag.String("sent-file", "", "the publisher's send times (JSON)")
	timeoutS := flag.Float64("timeout-s", 60, "bound on the whole run")
	symbol := flag.String("symbol", "BTCUSDT", "symbol to stream")
	window := flag.Int("window", 0, "fixed HTTP/2 stream and connection window in bytes (0: grpc-go's dynamic, BDP-probed one)")
	flag.Parse()

	request := protowire.AppendTag(nil, requestSymbols, protowire.BytesType)
	request = protowire.AppendString(request, *symbol)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeoutS*float64(time.Second)))
	defer cancel()
	all := make([]receipts, *subscribers)
	var wg sync.WaitGroup
	for i := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subscribe(ctx, *address, int32(*window), request, *expect, &all[i])
		}()
	}
	wg.Wait()

	sent, err := readSent(*sentFile, 30*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamclient: send times:", err)
		os.Exit(1)
	}
	var latencies []int64
	messages, updates := 0, 0
	errs := []string{}
	for _, got := range all {
		messages += got.messages
		updates += len(got.ids)
		if got.err != "" {
			errs = append(errs, got.err)
		}
		for j, id := range got.ids {
			if sentNs, ok := sent[id]; ok {
				latencies = append(latencies, got.times[j]-sentNs)
			}
		}
	}
	slices.Sort(latencies)
	result, _ := json.Marshal(map[string]any{
		"expected":     len(sent) * *subscribers,
		"latencies_ns": []int64{percentile(latencies, 0.5), percentile(latencies, 0.99), percentile(latencies, 1.0)},
		"received":     len(latencies),
		"messages":     messages,
		"updates":      updates,
		"errors":       errs,
	})
	fmt.Printf("result %s\n", result)
}
