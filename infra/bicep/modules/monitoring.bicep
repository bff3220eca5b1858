// Log Analytics + workspace-based Application Insights. Local (key) authentication is off:
// the Functions host sends telemetry with the managed identity (Monitoring Metrics Publisher).

param logAnalyticsName string
param appInsightsName string
param location string
param tags object = {}

@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
    DisableIpMasking: false
  }
}

output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
// Not a credential: with local auth disabled, ingestion needs an Entra token as well.
output appInsightsConnectionString string = appInsights.properties.ConnectionString
output logAnalyticsName string = workspace.name
output logAnalyticsId string = workspace.id
