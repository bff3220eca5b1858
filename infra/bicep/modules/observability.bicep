// The operators' view of the service's own metrics (core/metrics.py, exported to Application Insights as
// customMetrics): a workbook, and log alerts on metering errors, the usage journal backlog and the 5xx rate.

param appInsightsName string
param location string
param tags object = {}

@description('Resource ID of the action group the alerts notify; empty: the alerts fire without notifying anyone.')
param actionGroupId string = ''

@description('Bytes of usage records waiting in an instance\'s local journal (Table Storage unreachable) before the backlog alert fires.')
@minValue(1)
param journalBacklogAlertBytes int = 1048576

@description('Share of proxied calls answered 5xx, in percent over 15 minutes, above which the 5xx alert fires.')
@minValue(1)
@maxValue(100)
param serverErrorAlertPercent int = 5

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var actions = {
  actionGroups: empty(actionGroupId) ? [] : [
    actionGroupId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsightsName, 'liutong-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Liutong: tokens, refusals, time to first token, Marketplace metering'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: loadTextContent('workbook.json')
  }
}

// Marketplace usage events refused for good or expired unsent: usage that may never be billed.
resource meteringErrors 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'liutong-metering-errors-${appInsightsName}'
  location: location
  tags: tags
  properties: {
    displayName: 'Liutong: Marketplace metering errors'
    description: 'A usage event was refused for good (outcome error) or expired before it was sent. See docs/operators.md.'
    severity: 1
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "liutong.marketplace.submissions" | where tostring(customDimensions.outcome) in ("error", "expired") | summarize failed = sum(valueSum)'
          timeAggregation: 'Total'
          metricMeasureColumn: 'failed'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: actions
  }
}

// Table Storage has been unreachable long enough for records to pile up in an instance's journal.
resource journalBacklog 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'liutong-journal-backlog-${appInsightsName}'
  location: location
  tags: tags
  properties: {
    displayName: 'Liutong: usage journal backlog'
    description: 'Usage records wait in an instance\'s local journal: Table Storage is unreachable or refusing them. See docs/operators.md.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "liutong.usage.journal.backlog" | summarize backlog = max(value)'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'backlog'
          operator: 'GreaterThan'
          threshold: journalBacklogAlertBytes
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: actions
  }
}

// Calls that failed on our side or upstream (5xx): an upstream outage, a storage outage, a bug.
resource serverErrors 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = {
  name: 'liutong-5xx-rate-${appInsightsName}'
  location: location
  tags: tags
  properties: {
    displayName: 'Liutong: 5xx rate of proxied calls'
    description: 'More than the threshold share of proxied calls ended 5xx in 15 minutes. See docs/operators.md.'
    severity: 2
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "liutong.requests" | summarize total = sum(valueSum), failed = sumif(valueSum, tostring(customDimensions.status_class) == "5xx") | extend percent = iff(total > 0, 100.0 * failed / total, 0.0)'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'percent'
          operator: 'GreaterThan'
          threshold: serverErrorAlertPercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: actions
  }
}

output workbookId string = workbook.id
