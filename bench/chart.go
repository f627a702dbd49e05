package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

type chartPoint struct {
	Conc       int
	Pipe, Bare float64 // files/s
}

// drawChart draws throughput against concurrency (log scale) for the pipeline and the bare
// uploader.
func drawChart(pts []chartPoint, path string, files int, size int64) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("natif-uploader throughput (%d files of %d bytes per point)", files, size)
	p.X.Label.Text = "concurrency (NATIF_CONCURRENCY; goroutines of the bare uploader)"
	p.Y.Label.Text = "files/s"
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	pipe, bare := make(plotter.XYs, len(pts)), make(plotter.XYs, len(pts))
	maxY := 0.0
	for i, pt := range pts {
		pipe[i] = plotter.XY{X: float64(pt.Conc), Y: pt.Pipe}
		bare[i] = plotter.XY{X: float64(pt.Conc), Y: pt.Bare}
		ticks = append(ticks, plot.Tick{Value: float64(pt.Conc), Label: fmt.Sprint(pt.Conc)})
		maxY = max(maxY, pt.Pipe, pt.Bare)
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Min, p.Y.Max = 0, maxY*1.25 // room for the legend
	p.Y.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		ticks := plot.DefaultTicks{}.Ticks(lo, hi)
		for i := range ticks {
			if ticks[i].Label != "" {
				ticks[i].Label = fmt.Sprintf("%.0f", ticks[i].Value)
			}
		}
		return ticks
	})
	for _, s := range []struct {
		name  string
		xy    plotter.XYs
		color color.Color
		shape draw.GlyphDrawer
	}{
		{"pipeline (natif-uploader run)", pipe, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, draw.CircleGlyph{}},
		{"bare Go uploader", bare, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, draw.SquareGlyph{}},
	} {
		l, sc, err := plotter.NewLinePoints(s.xy)
		if err != nil {
			return err
		}
		l.Color, l.Width = s.color, vg.Points(1.5)
		sc.Color, sc.Shape, sc.Radius = s.color, s.shape, vg.Points(3)
		p.Add(l, sc)
		p.Legend.Add(s.name, l, sc)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(30), -vg.Points(4)
	p.Title.Padding = vg.Points(8)
	p.Add(plotter.NewGrid())
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}
