package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/natif-uploader/natif-uploader/natif"
)

// fetchExtractions polls GET /documents/{uuid} until processing_status
// leaves "pending", then saves GET /documents/{uuid}/extractions next to the
// archived file. It is best effort: the upload is done whatever happens here.
func (h *Handler) fetchExtractions(ctx context.Context, log zerolog.Logger, documentID, final string) {
	u := h.o.Uploader
	base := strings.TrimRight(u.BaseURL, "/") + "/documents/" + documentID
	interval := u.PollInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	for {
		var doc struct {
			Status string `json:"processing_status"`
		}
		if err := h.getJSON(ctx, base, &doc); err != nil {
			log.Warn().Err(err).Msg("cannot fetch the processing status; extractions not saved")
			return
		}
		if doc.Status == "success" {
			break
		}
		if doc.Status != "pending" {
			log.Warn().Str("processing_status", doc.Status).Msg("natif did not process the document; no extractions")
			return
		}
		select {
		case <-ctx.Done():
			log.Warn().Msg("processing still pending when the attempt ended; extractions not saved")
			return
		case <-time.After(interval):
		}
	}
	var ex json.RawMessage
	if err := h.getJSON(ctx, base+"/extractions", &ex); err != nil {
		log.Warn().Err(err).Msg("cannot fetch the extractions")
		return
	}
	if err := writeFileAtomic(final+ExtractionsSuffix, ex); err != nil {
		log.Warn().Err(err).Msg("cannot save the extractions")
		return
	}
	log.Info().Str("extractions", final+ExtractionsSuffix).Msg("extractions saved")
}

func (h *Handler) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.o.Uploader.Client.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return natif.ReadAPIError(resp, time.Now())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResult))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: answer is not JSON", req.URL.Path)
	}
	return nil
}
