package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/kubeflow/pipelines/api/v2alpha1/go/pipelinespec"
	"github.com/kubeflow/pipelines/backend/src/v2/metadata"
	pb "github.com/kubeflow/pipelines/third_party/ml-metadata/go/ml_metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// runCase is one run of the pipeline: which container task fails (by name, in its first
// iteration when it is inside a ParallelFor), whether the dsl.If conditions are taken, and
// whether the tasks that may be cached are cache hits.
type runCase struct {
	Name   string
	Fail   string
	Taken  bool
	Cached bool
}

var cases = []runCase{
	{Name: "succeeded-deployed", Taken: true},
	{Name: "succeeded-deploy-skipped", Taken: false},
	{Name: "parallelfor-task-failed", Fail: "model-score-candidate", Taken: true},
	{Name: "cached-tasks", Taken: true, Cached: true},
}

// Iterations is the number of items the ParallelFor tasks fan out to.
const Iterations = 2

// replayer creates a run's executions as the drivers do (backend/src/v2/driver: root_dag.go,
// dag.go, container.go) and finishes each container as the launcher does
// (backend/src/v2/component/launcher_v2.go: PublishExecution, then the deferred
// UpdateDAGExecutionsState of the task's parent DAG; a cache hit is published CACHED by the
// driver and updates no DAG), all through the backend's own metadata.Client.
type replayer struct {
	ctx      context.Context
	client   *metadata.Client
	pipeline *metadata.Pipeline
	spec     *pipelinespec.PipelineSpec
	c        runCase
}

func readSpec(path string) (*pipelinespec.PipelineSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	first := bytes.SplitN(data, []byte("\n---\n"), 2)[0]
	jsonData, err := yaml.YAMLToJSON(first)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	spec := &pipelinespec.PipelineSpec{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(jsonData, spec); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return spec, nil
}

// replayAll runs every case against a fresh in-memory MLMD and prints, as JSON, the state
// string each exit task receives in its PipelineTaskFinalStatus.
func replayAll(w io.Writer, path string) error {
	spec, err := readSpec(path)
	if err != nil {
		return err
	}
	result := map[string]map[string]string{}
	for _, c := range cases {
		states, err := replayCase(spec, c)
		if err != nil {
			return fmt.Errorf("case %s: %v", c.Name, err)
		}
		result[c.Name] = states
	}
	out, err := json.MarshalIndent(result, "", " ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(out))
	return err
}

func replayCase(spec *pipelinespec.PipelineSpec, c runCase) (map[string]string, error) {
	store := newMemoryMLMD()
	port, stop, err := store.serve()
	if err != nil {
		return nil, err
	}
	defer stop()
	client, err := newMLMDClient("127.0.0.1", port)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	runID := "run-" + c.Name
	pipeline, err := client.GetPipeline(ctx, spec.GetPipelineInfo().GetName(), runID, "kubeflow", "run-resource", "minio://root", "")
	if err != nil {
		return nil, err
	}
	r := &replayer{ctx: ctx, client: client, pipeline: pipeline, spec: spec, c: c}
	root, err := client.CreateExecution(ctx, pipeline, &metadata.ExecutionConfig{
		ExecutionType: metadata.DagExecutionTypeName,
		Name:          "run/" + runID,
	})
	if err != nil {
		return nil, err
	}
	received, _, err := r.walk(spec.GetRoot(), root.GetID(), nil)
	return received, err
}

// order sorts a DAG's task names so that each comes after the tasks it depends on.
func order(tasks map[string]*pipelinespec.PipelineTaskSpec) []string {
	var names, done []string
	for name := range tasks {
		names = append(names, name)
	}
	sort.Strings(names)
	placed := map[string]bool{}
	for len(done) < len(names) {
		for _, name := range names {
			ready := !placed[name]
			for _, dep := range tasks[name].GetDependentTasks() {
				ready = ready && placed[dep]
			}
			if ready {
				placed[name] = true
				done = append(done, name)
			}
		}
	}
	return done
}

// walk runs the tasks of a DAG component whose execution is dagID, and returns the state
// strings its exit tasks receive (task name -> state) and whether all its tasks succeeded.
func (r *replayer) walk(component *pipelinespec.ComponentSpec, dagID int64, iteration *int) (map[string]string, bool, error) {
	received := map[string]string{}
	tasks := component.GetDag().GetTasks()
	ok := map[string]bool{}
	for _, name := range order(tasks) {
		task := tasks[name]
		runsAnyway := task.GetTriggerPolicy().GetStrategy() == pipelinespec.PipelineTaskSpec_TriggerPolicy_ALL_UPSTREAM_TASKS_COMPLETED
		ready := true
		for _, dep := range task.GetDependentTasks() {
			ready = ready && ok[dep]
		}
		if !ready && !runsAnyway {
			continue // Argo does not start a task whose upstream failed
		}
		if status := task.GetInputs().GetParameters(); runsAnyway && len(status) > 0 {
			state, err := r.finalStatus(dagID, task)
			if err != nil {
				return nil, false, err
			}
			received[name] = state
		}
		sub := r.spec.GetComponents()[task.GetComponentRef().GetName()]
		var err error
		if sub.GetDag() != nil {
			ok[name], err = r.dag(name, task, sub, dagID, received)
		} else {
			ok[name], err = r.container(name, task, dagID, iteration)
		}
		if err != nil {
			return nil, false, err
		}
	}
	all := true
	for name := range tasks {
		all = all && ok[name]
	}
	return received, all, nil
}

// finalStatus is the exit task's input as the driver resolves it (backend/src/v2/driver/
// resolve.go, TaskFinalStatus): the state of its first upstream task's execution in this DAG.
func (r *replayer) finalStatus(dagID int64, task *pipelinespec.PipelineTaskSpec) (string, error) {
	dag, err := r.client.GetDAG(r.ctx, dagID)
	if err != nil {
		return "", err
	}
	tasks, err := r.client.GetExecutionsInDAG(r.ctx, dag, r.pipeline, true)
	if err != nil {
		return "", err
	}
	producer, found := tasks[metadata.GetTaskNameWithDagID(task.GetDependentTasks()[0], dagID)]
	if !found {
		return "", fmt.Errorf("producer task %s not in the DAG", task.GetDependentTasks()[0])
	}
	return producer.GetExecution().GetLastKnownState().String(), nil
}

func (r *replayer) dag(name string, task *pipelinespec.PipelineTaskSpec, sub *pipelinespec.ComponentSpec, parentID int64, received map[string]string) (bool, error) {
	total := len(sub.GetDag().GetTasks())
	config := &metadata.ExecutionConfig{
		TaskName:      name,
		DisplayName:   task.GetTaskInfo().GetName(),
		ExecutionType: metadata.DagExecutionTypeName,
		ParentDagID:   parentID,
		TotalDagTasks: &total,
		NotTriggered:  task.GetTriggerPolicy().GetCondition() != "" && !r.c.Taken,
	}
	if task.GetParameterIterator() != nil || task.GetArtifactIterator() != nil {
		count := Iterations
		config.IterationCount = &count
	}
	execution, err := r.client.CreateExecution(r.ctx, r.pipeline, config)
	if err != nil || config.NotTriggered {
		return err == nil, err
	}
	if config.IterationCount == nil {
		inner, all, err := r.walk(sub, execution.GetID(), nil)
		mergeInto(received, inner)
		return all, err
	}
	all := true
	for i := 0; i < Iterations; i++ {
		index := i
		iteration, err := r.client.CreateExecution(r.ctx, r.pipeline, &metadata.ExecutionConfig{
			TaskName:       name,
			DisplayName:    task.GetTaskInfo().GetName(),
			ExecutionType:  metadata.DagExecutionTypeName,
			ParentDagID:    execution.GetID(),
			IterationIndex: &index,
			TotalDagTasks:  &total,
		})
		if err != nil {
			return false, err
		}
		inner, done, err := r.walk(sub, iteration.GetID(), &index)
		if err != nil {
			return false, err
		}
		mergeInto(received, inner)
		all = all && done
	}
	return all, nil
}

func (r *replayer) container(name string, task *pipelinespec.PipelineTaskSpec, parentID int64, iteration *int) (bool, error) {
	execution, err := r.client.CreateExecution(r.ctx, r.pipeline, &metadata.ExecutionConfig{
		TaskName:       name,
		DisplayName:    task.GetTaskInfo().GetName(),
		ExecutionType:  metadata.ContainerExecutionTypeName,
		ParentDagID:    parentID,
		IterationIndex: iteration,
	})
	if err != nil {
		return false, err
	}
	if r.c.Cached && task.GetCachingOptions().GetEnableCache() {
		// driver/container.go: a cache hit is published CACHED; no launcher runs.
		err = r.client.PublishExecution(r.ctx, execution, nil, nil, pb.Execution_CACHED)
		return err == nil, err
	}
	state := pb.Execution_COMPLETE
	if name == r.c.Fail && (iteration == nil || *iteration == 0) {
		state = pb.Execution_FAILED
	}
	if err := r.client.PublishExecution(r.ctx, execution, nil, nil, state); err != nil {
		return false, err
	}
	// launcher_v2.go: the deferred update of the task's parent DAG.
	dag, err := r.client.GetDAG(r.ctx, parentID)
	if err != nil {
		return false, err
	}
	if err := r.client.UpdateDAGExecutionsState(r.ctx, dag, r.pipeline); err != nil {
		return false, err
	}
	return state == pb.Execution_COMPLETE, nil
}

func mergeInto(into, from map[string]string) {
	for k, v := range from {
		into[k] = v
	}
}
