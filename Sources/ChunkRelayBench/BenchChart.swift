import Foundation

/// The data-path benchmark's chart: throughput by mode and chunk cap as grouped bars, with nginx's
/// download rate of the same file as a line across them. Plain SVG, so README shows it as it is.
enum BenchChart {
    static func throughput(results: [DataPathBench.CapResult], imageMiB: Double) -> String {
        let median = DataPathBench.median
        let series: [(name: String, color: String, value: (DataPathBench.CapResult) -> Double)] = [
            ("ingest (running → ready)", "#4e79a7", { median($0.ingest) }),
            ("one-shot download", "#59a14f", { median($0.download) }),
            ("retrieve, end to end", "#f28e2b", { imageMiB / median($0.retrieveWall) }),
            ("stream, end to end", "#e15759", { imageMiB / median($0.streamWall) }),
        ]
        let nginx = median(results.flatMap(\.nginx))
        let top = max(nginx, results.flatMap { result in series.map { $0.value(result) } }.max() ?? 1) * 1.1
        let (width, height, left, bottom, topMargin) = (760.0, 380.0, 70.0, 60.0, 40.0)
        let plotHeight = height - bottom - topMargin
        let groupWidth = (width - left - 20) / Double(max(results.count, 1))
        let barWidth = groupWidth * 0.8 / Double(series.count)
        func y(_ value: Double) -> Double { topMargin + plotHeight * (1 - value / top) }

        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(width / 2))" y="20" text-anchor="middle" font-size="14">ChunkRelay data path, MiB/s (median of runs, \(Int(imageMiB)) MiB image)</text>

            """
        // Axis with five ticks.
        for step in 0...5 {
            let value = top / 5 * Double(step)
            svg += "<line x1=\"\(left)\" x2=\"\(width - 20)\" y1=\"\(y(value))\" y2=\"\(y(value))\" stroke=\"#ddd\"/>\n"
            svg += "<text x=\"\(left - 6)\" y=\"\(y(value) + 4)\" text-anchor=\"end\">\(Int(value))</text>\n"
        }
        for (group, result) in results.enumerated() {
            let x0 = left + Double(group) * groupWidth + groupWidth * 0.1
            for (index, entry) in series.enumerated() {
                let value = entry.value(result)
                let x = x0 + Double(index) * barWidth
                svg += "<rect x=\"\(x)\" y=\"\(y(value))\" width=\"\(barWidth - 2)\" height=\"\(y(0) - y(value))\" fill=\"\(entry.color)\"/>\n"
                svg += "<text x=\"\(x + barWidth / 2 - 1)\" y=\"\(y(value) - 4)\" text-anchor=\"middle\" font-size=\"10\">\(Int(value))</text>\n"
            }
            svg += "<text x=\"\(x0 + groupWidth * 0.4)\" y=\"\(y(0) + 18)\" text-anchor=\"middle\">cap \(DataPathBench.capName(result.cap))</text>\n"
        }
        svg += "<line x1=\"\(left)\" x2=\"\(width - 20)\" y1=\"\(y(nginx))\" y2=\"\(y(nginx))\" stroke=\"black\" stroke-dasharray=\"6 4\"/>\n"
        svg += "<text x=\"\(width - 22)\" y=\"\(y(nginx) - 5)\" text-anchor=\"end\">nginx sendfile download: \(Int(nginx))</text>\n"
        for (index, entry) in series.enumerated() {
            let x = left + Double(index) * 170
            svg += "<rect x=\"\(x)\" y=\"\(height - 24)\" width=\"12\" height=\"12\" fill=\"\(entry.color)\"/>\n"
            svg += "<text x=\"\(x + 16)\" y=\"\(height - 14)\">\(entry.name)</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }
}
