/// Figures with ScottPlot: titled, labelled axes, a legend where there are several series, PNG at 900×650.
module Appendix.Figures

open ScottPlot

/// One series: points, a legend label ("" for none), a colour, a line width (0: markers only).
type Series = { X: float[]; Y: float[]; Label: string; Color: Color; Width: float32 }

/// A series.
let series x y label color width = { X = x; Y = y; Label = label; Color = color; Width = width }

/// The two class colours used throughout.
let classColors = [| Colors.OrangeRed; Colors.RoyalBlue |]

/// Draws `all` into one plot and saves it as `file`.
let save (file: string) (title: string) (xLabel: string) (yLabel: string) (all: Series list) =
    let plot = Plot()
    for s in all do
        if s.Width > 0.0f then
            let line = plot.Add.ScatterLine(s.X, s.Y)
            line.Color <- s.Color
            line.LineWidth <- s.Width
            if s.Label <> "" then line.LegendText <- s.Label
        else
            let points = plot.Add.ScatterPoints(s.X, s.Y)
            points.Color <- s.Color
            points.MarkerSize <- 5.0f
            if s.Label <> "" then points.LegendText <- s.Label
    plot.Title(title)
    plot.XLabel(xLabel)
    plot.YLabel(yLabel)
    if all |> List.exists (fun s -> s.Label <> "") then plot.ShowLegend(Alignment.UpperRight) |> ignore
    plot.SavePng(file, 900, 650) |> ignore
