import ArgumentParser
import CGTEvaluation
import CGTExperiments
import CGTJob

// Closed sets the command line takes by name; ArgumentParser lists the names in --help and
// rejects any other with them.
extension SelectionMetric: ExpressibleByArgument {}
extension ExitCriterion: ExpressibleByArgument {}
extension ExitFallback: ExpressibleByArgument {}
extension TrialSchedule: ExpressibleByArgument {}
