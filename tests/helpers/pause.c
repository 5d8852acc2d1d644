/*
 * The pod sandbox's process for the CRI test (a pause image needs no
 * internet this way): it holds the pod's namespaces open and does nothing
 * else, as Kubernetes' pause does. As PID 1 of a shared PID namespace it
 * reaps the orphans that end up with it; SIGTERM or SIGINT (StopPodSandbox)
 * end it with 0.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static int handle(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = SA_NOCLDSTOP;
	return sigaction(sig, &sa, NULL);
}

int main(void)
{
	/* PID 1 gets no default action for TERM and INT: without handlers it
	 * could only be killed. */
	if (handle(SIGTERM, on_stop) || handle(SIGINT, on_stop) ||
	    handle(SIGCHLD, on_child)) {
		perror("pause: sigaction");
		return 1;
	}
	for (;;)
		pause();
}
