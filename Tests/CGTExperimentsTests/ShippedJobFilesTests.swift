import CGTExperiments
import CGTJob
import Foundation
import XCTest

/// Every job and grid file in `jobs/` loads, and each is named after what it trains.
final class ShippedJobFilesTests: XCTestCase {
    func testShippedJobFilesLoad() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let jobs = root.appendingPathComponent("jobs")
        let files =
            FileManager.default.enumerator(atPath: jobs.path)?.compactMap { $0 as? String }.filter {
                $0.hasSuffix(".yaml")
            } ?? []
        XCTAssertFalse(files.isEmpty)
        for file in files {
            let path = jobs.appendingPathComponent(file).path
            if file.hasPrefix("grids/") {
                XCTAssertFalse(
                    (try? GridFile.load(path: path).jobs())?.isEmpty ?? true, "\(file): every trial's job must load")
            } else {
                XCTAssertNoThrow(try JobLoader.load(path: path), file)
                // A job named after a method trains that method; one named after an option
                // (distillation, equilibrium, boosting) sets it; the name field says the dataset and file.
                guard let job = try? JobLoader.load(path: path) else { continue }
                let stem = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
                let dataset = URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent
                if let method = TrainingMethod(rawValue: stem) { XCTAssertEqual(job.method.name, method, file) }
                switch stem {
                case "distillation": XCTAssertNotNil(job.method.distillation, file)
                case "equilibrium": XCTAssertTrue(job.method.gradientEquilibrium, file)
                case "boosting": XCTAssertTrue(job.method.boosting, file)
                default: break
                }
                XCTAssertEqual(job.name, "\(dataset)_\(stem)", file)
            }
        }
        for dataset in ["indian_pines", "fashion_mnist"] {
            for method in ["branchynet", "co", "classynet", "hardcgt", "softcgt"] {
                XCTAssertTrue(files.contains("\(dataset)/\(method).yaml"), "Table 1 row \(dataset)/\(method)")
            }
        }
    }
}
